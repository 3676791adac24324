with sold as (
    select
        storefront_id,
        model3d_id,
        cast(sum(quantity) as bigint) as quantity,
        sum(total_price_value) as revenue,
        total_price_currency as currency,
        count(distinct order_id) as orders
    from ({{ sold_items() }})
    group by all
)

select
    sold.storefront_id,
    sold.model3d_id as product_id,
    p.name as product_name,
    sold.quantity,
    sold.revenue,
    sold.currency,
    sold.orders
from sold
left join {{ ref('stg_products') }} as p
    on p.storefront_id = sold.storefront_id and p.product_id = sold.model3d_id
order by sold.storefront_id, sold.revenue desc, sold.quantity desc, sold.model3d_id
